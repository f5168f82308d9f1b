"""JPEG decoded on the model's device: the same crops as torchvision's own transforms, in the
batch's order, and what the Predictor makes of them. Here the device is the CPU (libjpeg-turbo);
on a GPU, a run with --decode-on-device records nvJPEG's difference as its decoding_cost."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import CenterCrop, Resize
from torchvision.transforms.v2 import functional as F

from bench.stages.crops import preprocess
from bench.stages.device_jpeg import decode_resize_crop
from bench.stages.pixel_predictor import Predictor
from bench.variants import variant

CPU = torch.device("cpu")


def jpeg(height: int, width: int, seed_: int) -> bytes:
    """A photo-like test image (coarse blocks plus grain) as JPEG bytes."""
    rng = np.random.default_rng(seed_)
    coarse = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    pixels = np.clip(coarse[:height, :width].astype(int) + rng.integers(-12, 12, (height, width, 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def batch_of(encoded: list[bytes]) -> dict[str, np.ndarray]:
    return {"id": np.array([f"i{i}" for i in range(len(encoded))], object), "label": np.arange(len(encoded)),
            "image": np.array(encoded, object)}


def test_crops_are_torchvisions_resize_and_center_crop_of_each_image_in_order():
    sizes = [(375, 500), (256, 256), (500, 333), (375, 500), (600, 800), (256, 256)]  # sizes repeat, out of order
    encoded = [jpeg(h, w, i) for i, (h, w) in enumerate(sizes)]
    crops = decode_resize_crop(np.array(encoded, object), CPU)
    assert crops.shape == (len(sizes), 3, 224, 224) and crops.dtype == torch.uint8
    for i, data in enumerate(encoded):  # one image at a time
        decoded = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        alone = F.center_crop(F.resize(decoded, [256], antialias=True), [224])
        assert torch.equal(crops[i], alone), f"image {i} ({sizes[i]}): batching changed its pixels"
        classic = CenterCrop(224)(Resize(256, antialias=True)(decoded))  # torchvision's v1 transforms round
        assert (crops[i].int() - classic.int()).abs().max() <= 1, f"image {i} ({sizes[i]})"  # differently


def test_on_the_cpu_stored_256_images_give_the_cpu_paths_pixels_and_logits():
    # data-prep's synthetic JPEGs are 256x256: no resize, and libjpeg-turbo decodes them
    # exactly as Pillow does, so the Predictor sees the same input either way.
    encoded = batch_of([jpeg(256, 256, i) for i in range(4)])
    on_cpu = preprocess(encoded)["image"]
    on_device = decode_resize_crop(encoded["image"], CPU).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(on_device, on_cpu)

    predictor = Predictor("random", 0, "cpu", "fp32", save_logits=True)
    passed_on = variant("fast").preprocess_for("jpeg", decode_on_device=True)(encoded)
    assert passed_on["image"] is encoded["image"]  # the bytes, untouched, for the model's device
    torch.testing.assert_close(predictor.inputs(passed_on["image"]), predictor.inputs(on_cpu), rtol=0, atol=0)
    assert predictor.inputs(passed_on["image"]).is_contiguous(memory_format=torch.channels_last)
