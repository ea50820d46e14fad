"""`python -m benchmarks.forced_prep WAY run -c DIR`: the daemon with every GPU rung's frames
prepared one way only (WAY = gpu: the kernel for every frame it fits; cpu: never the kernel),
so that the per-size choice can be compared with both ways on the same machine. A benchmark
tool only: the daemon itself chooses per frame size (`choose_way.ChoosePerSize`)."""

from __future__ import annotations

import sys

from edgeswin import cli
from edgeswin.prepare import choose_way
from edgeswin.prepare.preprocess import to_bgr


def forced(way: str):
    def prepare(self, image):
        image = to_bgr(image)
        if way == "gpu" and self.gpu.fits(image):
            prepared = self.gpu(image)
            if prepared is not None:
                return prepared
        return self.cpu(image)
    return prepare


if __name__ == "__main__":
    way = sys.argv.pop(1)
    if way not in ("gpu", "cpu"):
        raise SystemExit("usage: python -m benchmarks.forced_prep gpu|cpu run -c DIR")
    choose_way.ChoosePerSize.__call__ = forced(way)
    sys.exit(cli.main(sys.argv[1:]))
