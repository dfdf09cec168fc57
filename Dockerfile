# CPU image: installs the package and runs the command line.
#   docker build -t retinaface-polynl .
#   docker run --rm -v "$PWD:/data" retinaface-polynl anonymize /data/photo.jpg --output /data/out
# (A GPU variant with TensorRT is Dockerfile.gpu.)
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/retinaface-polynl
# The light install: detect, anonymize and evaluate on the shipped ONNX file with numpy, OpenCV,
# onnxruntime and PyAV (no PyTorch).  For training or export inside the image, add
# `pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1`
# before the last line and install ".[all]" instead.
COPY . .
RUN pip install ".[eval,heif]" && retinaface-polynl --help >/dev/null

ENTRYPOINT ["retinaface-polynl"]
CMD ["--help"]
