# GPU workstation image: the same package as the README's install, with the CUDA build of torch.
#   docker build -t gimsfm .
#   docker run --gpus all -v "$PWD":/data gimsfm reconstruct /data/images --out /data/out --device cuda
FROM python:3.11-slim-bookworm

RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libusb-1.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

# PyPI's default Linux wheel of torch is the CUDA build; pin the same version as install.sh.
RUN pip install --no-cache-dir torch==2.13.0

WORKDIR /opt/gimsfm
COPY pyproject.toml README.md ./
COPY gimsfm ./gimsfm
COPY pipelines ./pipelines
COPY scenes ./scenes
RUN pip install --no-cache-dir -e .

WORKDIR /data
ENTRYPOINT ["gimsfm"]
CMD ["--help"]
