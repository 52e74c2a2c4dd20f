"""What a run leaves on disk and how every verb finds it: run directories, checkpoints (read, found,
written atomically, upgraded from older formats) and the dataset a run trained on."""
