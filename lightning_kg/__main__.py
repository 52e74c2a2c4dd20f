from lightning_kg.cli import main

main()
