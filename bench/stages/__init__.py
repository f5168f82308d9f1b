"""The pipeline's stages as plain Python (no Ray): what the variants (bench.variants) are made of.

- Preprocessing: ``crops`` (uint8 centre crops, no torch) and ``float_transform`` (the
  reference's float32 torchvision transform), over ``mlperf`` (the transform's constants),
  ``jpeg`` (CPU decoding) and ``handoff`` (the batch handed to the model, and where it ran).
- Model stages: ``model`` (device, precision, verified weights, the forward pass), with
  ``pixel_predictor`` (uint8 pixels normalised on the device) and ``reference_predictor``
  (ready float tensors); ``device_jpeg`` (JPEG decoded on the model's device).
- Around the model: ``weights`` (verified ResNet-50 weights), ``precision`` (defaults and the
  accuracy cost of reduced precision), ``quantize`` (int8).

Preprocessing that needs no torch must not import it: torch and torchvision cost each worker
that imports them seconds of a core and hundreds of MB (docs/performance.md), and Ray imports a
preprocessing function's module in every worker that runs it.
"""

import time

# When this process first loaded a stage (for a model actor: its class arriving, before torch).
LOADED = time.time()
