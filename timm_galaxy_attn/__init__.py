"""timm-galaxy-attn."""
