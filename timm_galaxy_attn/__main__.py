"""``python -m timm_galaxy_attn predict ...`` (also under ``accelerate launch -m timm_galaxy_attn``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
