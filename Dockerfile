# GPU image for lightning_kg: official PyTorch CUDA runtime, the project installed on top, non-root.
#   docker build -t lightning_kg .
#   docker run --gpus all --ipc=host -v $PWD/runs:/app/runs -v /data:/data lightning_kg fit --config conf/scale/base-zero2.yaml
FROM pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# g++ and ninja build DeepSpeed's ops the first time they are used.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++=4:* ninja-build=1.* \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 trainer
WORKDIR /app

# Dependencies first, so code changes do not reinstall them; torch comes from the base image.
COPY pyproject.toml README.md ./
COPY lightning_kg/__init__.py lightning_kg/__init__.py
RUN pip install ".[deepspeed]" && pip uninstall -y lightning-kg

COPY lightning_kg lightning_kg
COPY conf conf
COPY shards shards
COPY slurm slurm
RUN pip install --no-deps . && chown -R trainer:trainer /app

USER trainer
ENTRYPOINT ["python", "-m", "lightning_kg"]
CMD ["--help"]
