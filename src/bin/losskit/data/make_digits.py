"""Write digits.bin: the 8x8 handwritten digits in the compact form `losskit demo` embeds.

Source: the "Optical Recognition of Handwritten Digits" data set (E. Alpaydin, C. Kaynak,
UCI Machine Learning Repository, licence CC BY 4.0), as shipped by scikit-learn's
`sklearn.datasets.load_digits` (1797 samples, 64 pixel features with values 0..16,
10 classes).

Format (all little-endian), lossless:
    b"LKDG"                 magic
    u16 count               number of samples (1797)
    count records of 41 bytes:
        u8  label            0..9
        40 bytes             the 64 pixel values 0..16, 5 bits each, least significant
                             bit first: pixel k occupies bits 5k .. 5k+4 of the 320-bit
                             little-endian integer the 40 bytes form

Run once by hand, not by CI; needs scikit-learn (pip install scikit-learn). Produced with
scikit-learn 1.9.1 and numpy 2.4.6 on Python 3.11:
    python make_digits.py digits.bin
"""
import struct
import sys

from sklearn.datasets import load_digits

d = load_digits()
X = d.data.astype(int)
y = d.target.astype(int)
assert X.shape == (1797, 64) and X.min() >= 0 and X.max() <= 16
out = bytearray(b"LKDG") + struct.pack("<H", len(y))
for row, label in zip(X, y):
    out.append(int(label))
    bits = 0
    for k, v in enumerate(row):
        bits |= int(v) << (5 * k)
    out += bits.to_bytes(40, "little")
with open(sys.argv[1] if len(sys.argv) > 1 else "digits.bin", "wb") as f:
    f.write(out)
print(f"{len(y)} samples, {len(out)} bytes, label counts {sorted(set(y.tolist()))}")
