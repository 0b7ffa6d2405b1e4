# gimsfm in a container: the package (installed non-editable), its presets and weights, the demo scene.
# GPU image (the default: PyPI's torch wheel, the CUDA build, about 7 GB):
#   docker build -t gimsfm .
#   docker run --rm --gpus all --user "$(id -u):$(id -g)" -v "$PWD/out":/data/out gimsfm \
#     reconstruct /opt/gimsfm/scenes/sacre_coeur/images --out /data/out --device cuda
# CPU image (PyTorch's CPU wheel, about 3 GB):
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t gimsfm:cpu .
# Build args: BASE_IMAGE (a Debian bookworm image with Python 3.11 at `python`), TORCH_SPEC (keep it the pin in
# install.sh), TORCH_INDEX_URL (index for torch only; empty: the default index), PIP_FIND_LINKS (a wheel
# folder, e.g. mounted into a podman build). scripts/docker-smoke.sh builds and checks both images.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# -- runtime: system libraries (the same as install.sh) and a non-root user
FROM ${BASE_IMAGE} AS runtime
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libusb-1.0-0 libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 --shell /usr/sbin/nologin gimsfm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH \
    MPLCONFIGDIR=/tmp/matplotlib XDG_CACHE_HOME=/tmp/.cache

# -- deps: a venv with torch, then the package's dependencies from pyproject.toml (not its code), so editing
# the code rebuilds neither layer. The image builds on these layers (no multi-GB copy between stages).
FROM runtime AS deps
ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=
ARG PIP_FIND_LINKS=
RUN python -m venv /opt/venv \
    && pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt /tmp/pyproject.toml

# -- wheel: the package built from the source (presets and weights as package data); its build environment
# (setuptools, the source tree) stays in this stage
FROM deps AS wheel
COPY pyproject.toml README.md LICENSE /src/
COPY pipelines /src/pipelines
COPY gimsfm /src/gimsfm
RUN pip wheel --no-deps --wheel-dir /dist /src

# -- the image: the deps layers, the package (non-editable), the demo scene
FROM deps
# the wheel (about 6 MB) stays in the COPY layer: a code edit adds only small layers over the venv
COPY --from=wheel /dist /tmp/dist
RUN pip install --no-deps /tmp/dist/*.whl && rm -rf /tmp/dist && pip check
COPY scenes /opt/gimsfm/scenes
USER gimsfm
WORKDIR /data
ENTRYPOINT ["gimsfm"]
CMD ["--help"]
