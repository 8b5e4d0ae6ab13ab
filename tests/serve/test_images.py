"""The ``oskit-image-v1`` preprocessing spec."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from _serve_helpers import image_bytes
from kit.serve.images import BadImage, decode_b64, open_image, preprocess


def _split_image(size: tuple[int, int]) -> Image.Image:
    """Left half red, right half blue — orientation and cropping are visible in the pixels."""
    img = Image.new("RGB", size, (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    return img


def test_output_shape_dtype_and_centre_crop() -> None:
    img = Image.new("RGB", (300, 100), (0, 255, 0))
    img.paste((255, 0, 0), (0, 0, 100, 100))  # the left third is cropped away
    buf = io.BytesIO()
    img.save(buf, "PNG")
    out = preprocess(buf.getvalue(), 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert (out[:, :, 1] > 200).all() and (out[:, :, 0] < 50).all()


def test_exif_orientation_applied() -> None:
    img = _split_image((64, 64))
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180°: red must end up on the right
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    out = preprocess(buf.getvalue(), 32)
    assert out[16, 28, 0] > 200 and out[16, 3, 2] > 200


def test_alpha_composited_over_white() -> None:
    out = preprocess(image_bytes((255, 0, 0, 0), size=(40, 40), fmt="PNG"), 16)
    assert (out > 250).all()


def test_grey_and_palette_become_rgb() -> None:
    for mode in ("L", "P", "CMYK"):
        buf = io.BytesIO()
        Image.new(mode, (20, 20)).save(buf, "TIFF" if mode == "CMYK" else "PNG")
        assert preprocess(buf.getvalue(), 8).shape == (8, 8, 3)


def test_jpeg_draft_decodes_large_images_smaller_but_never_below_size() -> None:
    data = image_bytes("purple", size=(2000, 1500))
    decoded = open_image(data, draft_size=224)
    w, h = decoded.image.size  # type: ignore[attr-defined]
    assert min(w, h) >= 224 and w <= 500  # libjpeg scaled by 1/4, not to 1500x2000
    assert (decoded.width, decoded.height) == (2000, 1500)  # the original size is reported
    assert preprocess(data, 224).shape == (224, 224, 3)


def test_bad_inputs() -> None:
    with pytest.raises(BadImage, match="empty"):
        open_image(b"")
    with pytest.raises(BadImage, match="corrupt|identify"):
        open_image(image_bytes()[:100])
    with pytest.raises(BadImage) as e:
        open_image(image_bytes(fmt="ICO"))
    assert e.value.code == "unsupported_image"
    with pytest.raises(BadImage) as e:
        open_image(image_bytes(size=(100, 100)), max_pixels=50 * 50)
    assert e.value.status == 413
    with pytest.raises(BadImage, match="base64"):
        decode_b64("@@@")
    with pytest.raises(BadImage):
        decode_b64(None)


def test_base64_variants() -> None:
    import base64

    raw = image_bytes()
    std = base64.b64encode(raw).decode()
    assert decode_b64(std) == raw
    assert decode_b64("data:image/jpeg;base64," + std) == raw
    assert decode_b64(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
