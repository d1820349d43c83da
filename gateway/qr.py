from __future__ import annotations

import base64
import io

import qrcode
from qrcode.image.pil import PilImage


def qr_data_uri(code: str) -> str:
    """The QR string rendered as a PNG data URI."""
    image = qrcode.make(code, border=2, image_factory=PilImage)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
