"""Build a small, messy ILSVRC2012 look-alike: every oddity real ImageNet is known to hold."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361", "n01494475"]  # sorted
CORRUPT = {"train/n01443537/n01443537_6", "train/n01443537/n01443537_7", "val/ILSVRC2012_val_00000004"}


def picture(seed: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255) // width, (y * 255) // height, ((x + y) * 127) // (width + height)], axis=-1)
    return np.clip(base + rng.integers(-10, 10, size=base.shape), 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def train_files() -> dict[str, bytes]:
    """relative path -> bytes for the train split."""
    rgb = Image.fromarray(picture(1, 320, 240))
    rotated = Image.fromarray(picture(5, 300, 200))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    good = encode(Image.fromarray(picture(6, 256, 256)))
    return {
        "train/n01440764/n01440764_1.JPEG": encode(rgb, quality=92),
        "train/n01440764/n01440764_2.JPEG": encode(Image.fromarray(picture(2, 200, 400)).convert("L")),
        "train/n01440764/n01440764_3.JPEG": encode(Image.fromarray(picture(3, 260, 260)).convert("CMYK")),
        "train/n01443537/n01443537_4.JPEG": encode(Image.fromarray(picture(4, 280, 350)), "PNG"),
        "train/n01443537/n01443537_5.JPEG": encode(rotated, exif=exif),
        "train/n01443537/n01443537_6.JPEG": good[: len(good) // 2],  # truncated
        "train/n01443537/n01443537_7.JPEG": b"this is not an image at all",
        "train/n01484850/n01484850_8.JPEG": encode(Image.fromarray(picture(8, 500, 375))),
        "train/n01484850/n01484850_9.JPEG": encode(Image.fromarray(picture(9, 64, 48))),  # upscaled
    }


VAL_TRUTH = {1: "n01491361", 2: "n01440764", 3: "n01494475", 4: "n01443537", 5: "n01484850"}


def val_files() -> dict[str, bytes]:
    files = {}
    for n in VAL_TRUTH:
        name = f"val/ILSVRC2012_val_{n:08d}.JPEG"
        files[name] = encode(Image.fromarray(picture(100 + n, 333 + n, 250)))
    files["val/ILSVRC2012_val_00000004.JPEG"] = files["val/ILSVRC2012_val_00000004.JPEG"][:300]
    return files


def synset_mapping() -> str:
    return "".join(f"{w} class {i}\n" for i, w in enumerate(WNIDS))


def solution_csv() -> str:
    rows = [f"ILSVRC2012_val_{n:08d},{w} 10 20 30 40" for n, w in VAL_TRUTH.items()]
    return "ImageId,PredictionString\n" + "\n".join(rows) + "\n"


def make_tree(root: Path, with_csv: bool = True) -> Path:
    for rel, data in {**train_files(), **val_files()}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "LOC_synset_mapping.txt").write_text(synset_mapping())
    if with_csv:
        (root / "LOC_val_solution.csv").write_text(solution_csv())
    return root


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_tars(root: Path) -> Path:
    """The official archives: a tar of per-class tars, a flat val tar and a devkit tar.gz."""
    root.mkdir(parents=True, exist_ok=True)
    by_class: dict[str, dict[str, bytes]] = {}
    for rel, data in train_files().items():
        _, wnid, name = rel.split("/")
        by_class.setdefault(wnid, {})[name] = data
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "w") as outer:
        for wnid, files in sorted(by_class.items()):
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as inner:
                for name, data in sorted(files.items()):
                    _add(inner, name, data)
            _add(outer, f"{wnid}.tar", buf.getvalue())
    with tarfile.open(root / "ILSVRC2012_img_val.tar", "w") as val:
        for rel, data in sorted(val_files().items()):
            _add(val, rel.split("/")[1], data)
    with tarfile.open(root / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as devkit:
        ids = _ilsvrc_ids()
        truth = "".join(f"{ids[w]}\n" for _, w in sorted(VAL_TRUTH.items()))
        _add(devkit, "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt", truth.encode())
        _add(devkit, "ILSVRC2012_devkit_t12/data/meta.mat", _meta_mat(ids))
    return root


def _ilsvrc_ids() -> dict[str, int]:
    # The devkit numbers classes in its own order, not sorted wnid order: reverse it here so a
    # reader that confuses the two gets the labels wrong.
    return {w: i + 1 for i, w in enumerate(reversed(WNIDS))}


def _meta_mat(ids: dict[str, int]) -> bytes:
    from scipy.io import savemat

    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images"]
    synsets = np.zeros((len(ids) + 1,), dtype=[(f, object) for f in fields])
    for row, (wnid, ilsvrc_id) in enumerate(sorted(ids.items(), key=lambda kv: kv[1])):
        synsets[row] = (ilsvrc_id, wnid, "words", "gloss", 0, np.zeros(0), 0, 1300)
    synsets[len(ids)] = (len(ids) + 1, "n00000001", "parent", "not a leaf", 2, np.array([1, 2]), 1, 0)
    buf = io.BytesIO()
    savemat(buf, {"synsets": synsets})
    return buf.getvalue()
