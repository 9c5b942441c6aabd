import io

import numpy as np
import pytest
from PIL import Image

from mlcv_cli.data.images import MAX_PIXELS, read_image, read_images
from mlcv_cli.errors import DataError


def encode(im, fmt, **kwargs):
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize(
    "mode, fmt",
    [("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("P", "GIF"), ("RGB", "JPEG"), ("RGBA", "PNG"),
     ("CMYK", "JPEG"), ("I;16", "PNG"), ("I", "TIFF"), ("1", "BMP"), ("RGB", "WEBP")],
)
def test_any_mode_becomes_rgb(tmp_path, mode, fmt):
    if mode.startswith("I"):
        im = Image.fromarray(np.full((7, 10), 40000, dtype=np.uint16))
        im = im.convert("I") if mode == "I" else im
    else:
        im = Image.new("RGB", (10, 7), (200, 100, 50)).convert(mode)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(encode(im, fmt))
    out = read_image(path, size=32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_16bit_grey_is_scaled():
    im = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    out = read_image(encode(im, "PNG"), size=4, name="grey16.png")
    assert (out == 255).all()


def test_rgba_keeps_colour_drops_alpha():
    im = Image.new("RGBA", (8, 8), (10, 20, 30, 0))
    out = read_image(encode(im, "PNG"), size=8)
    assert out[0, 0].tolist() == [10, 20, 30]


def test_exact_pixels_kept_at_target_size():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(read_image(encode(Image.fromarray(pixels), "PNG")), pixels)


def test_resize_any_size():
    im = Image.new("RGB", (64, 48), (0, 255, 0))
    out = read_image(encode(im, "PNG"), size=16)
    assert out.shape == (16, 16, 3)
    assert (out == [0, 255, 0]).all()


def test_zero_byte(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty.png.*0-byte"):
        read_image(path)


def test_text_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello, I am not a picture")
    with pytest.raises(DataError, match="notes.png.*not an image"):
        read_image(path)


def test_truncated_jpeg(tmp_path):
    rng = np.random.default_rng(0)
    data = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.jpg.*truncated"):
        read_image(path)


def test_bytes_error_uses_name():
    with pytest.raises(DataError, match="member.png"):
        read_image(b"junk", name="archive.zip:member.png")


def test_decompression_bomb_refused_before_decoding(tmp_path, png_header_only):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20000, 20000))  # 400 megapixels claimed, ~100 bytes on disk
    with pytest.raises(DataError, match=r"bomb.png.*too large"):
        read_image(path)


def test_just_over_our_cap_refused(tmp_path, png_header_only):
    side = int(MAX_PIXELS**0.5) + 1
    path = tmp_path / "big.png"
    path.write_bytes(png_header_only(side, side))
    with pytest.raises(DataError, match="big.png.*too large"):
        read_image(path)


def test_read_images_collects_bad(tmp_path):
    good = tmp_path / "good.png"
    Image.new("RGB", (5, 5), (1, 2, 3)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    with pytest.raises(DataError, match=r"1 unreadable.*bad.png.*--skip-bad"):
        read_images([good, bad], 8)
    images, ok, skipped = read_images([bad, good], 8, skip_bad=True)
    assert images.shape == (1, 8, 8, 3) and ok == [good]
    assert skipped[0][0] == str(bad) and "0-byte" in skipped[0][1]
