"""The reference benchmark's script (ray-10G.py, as ../../../README's reference section retells
it), on a data-prep dataset, with Ray Data 2.60's spelling of its calls and seeded random weights
(no download here). Prints images/s from before read_parquet, as the reference did.

    python docs/experiments/2026-12-02/reference_script.py ~/.cache/raybench/data/synth-mini-raw

Against `bench run mini --pipeline reference`, alternating: see README.md, "The reference
pipeline against the reference's script".
"""

import sys
import time

import numpy as np
import ray
import torch
from torchvision.models import resnet50
from torchvision.transforms import CenterCrop, Compose, Normalize, Resize

ray.init(address="local", include_dashboard=False, log_to_driver=False)
torch.manual_seed(0)
model = resnet50(weights=None)  # the reference: resnet50(weights=ResNet50_Weights.DEFAULT)
model_ref = ray.put(model)
transform = Compose([Resize(256), CenterCrop(224), Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])


def preprocess(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"image": transform(torch.Tensor(batch["image"].transpose(0, 3, 1, 2))).numpy()}


class Actor:
    def __init__(self, model):
        self.model = ray.get(model)
        self.model.eval()
        self.model.to("cpu")  # the reference: "cuda"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            return {"predictions": self.model(torch.as_tensor(batch["image"], device="cpu")).cpu().numpy()}


start = time.time()
ds = ray.data.read_parquet(sys.argv[1] + "/shards")
ds = ds.map_batches(preprocess, batch_format="numpy")
ds = ds.map_batches(Actor, batch_size=1000, batch_format="numpy", fn_constructor_kwargs={"model": model_ref},
                    compute=ray.data.ActorPoolStrategy(size=1, max_concurrent_calls_per_actor=2,
                                                       enable_true_multi_threading=True),
                    num_cpus=1)  # the reference: num_gpus=1, max_concurrency=2
images = 0
for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
    images += batch.num_rows
end = time.time()
print(f"{images} images, {images / (end - start):.2f} img/s, {end - start:.1f} s")
