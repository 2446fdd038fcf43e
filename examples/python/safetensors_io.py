"""Reads safetensors files into torch tensors (the subset of `safetensors.safe_open` the examples
use). Debian 12 packages no Python safetensors, and the examples must run from Debian packages
alone; the format is an 8-byte header length, a JSON header, then the raw little-endian tensors.
"""

import json
import mmap
import struct

import torch

DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


class SafetensorsError(ValueError):
    pass


class safe_open:  # noqa: N801 (the name safetensors gives it)
    """``with safe_open(path) as f: f.keys(); f.get_tensor(name)``; the file is memory-mapped."""

    def __init__(self, path, framework="pt", device="cpu"):
        self.path = str(path)
        self._file = open(self.path, "rb")
        size = self._file.seek(0, 2)
        if size < 8:
            raise SafetensorsError(f"{self.path}: {size} bytes, too short for a safetensors header")
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        (n,) = struct.unpack("<Q", self._map[:8])
        if n > size - 8:
            raise SafetensorsError(f"{self.path}: header of {n} bytes overruns the file")
        try:
            header = json.loads(bytes(self._map[8 : 8 + n]))
        except ValueError as e:
            raise SafetensorsError(f"{self.path}: header is not JSON ({e})") from None
        header.pop("__metadata__", None)
        self._base, self._size, self._header = 8 + n, size, header

    def keys(self):
        return list(self._header)

    def get_tensor(self, name):
        info = self._header[name]
        dtype = DTYPES.get(info["dtype"])
        if dtype is None:
            raise SafetensorsError(f"{self.path}: {name}: dtype {info['dtype']} is not supported")
        begin, end = (self._base + o for o in info["data_offsets"])
        count = 1
        for d in info["shape"]:
            count *= d
        if end > self._size or end - begin != count * torch.tensor([], dtype=dtype).element_size():
            raise SafetensorsError(f"{self.path}: {name}: data offsets do not fit its shape")
        data = bytearray(self._map[begin:end])  # a copy: the tensor outlives the map
        if count == 0:
            return torch.empty(info["shape"], dtype=dtype)
        return torch.frombuffer(data, dtype=dtype).reshape(info["shape"])

    def close(self):
        self._map.close()
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
