# GPU image for lightning_kg: the official PyTorch CUDA runtime image (torch comes from it), every other
# dependency at the exact version of docker/requirements.lock, the project on top, a non-root user.
#   docker build -t lightning_kg .
#   docker run --gpus all --ipc=host -v "$PWD/runs:/app/runs" -v /data:/data lightning_kg fit \
#       --config conf/model/base.yaml --config conf/data/wikipedia.yaml --config conf/trainer/gpu.yaml \
#       --config conf/strategy/zero2.yaml
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

# Locked dependencies first, so a code change does not reinstall them.
COPY docker/requirements.lock docker/requirements.lock
RUN pip install --requirement docker/requirements.lock

COPY pyproject.toml README.md ./
COPY lightning_kg lightning_kg
COPY conf conf
COPY shards shards
COPY slurm slurm
RUN pip install --no-deps . && chown -R 1000:1000 /app

USER 1000
ENTRYPOINT ["python", "-m", "lightning_kg"]
CMD ["--help"]
