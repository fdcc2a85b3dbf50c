"""The self-contained qwex agent bundle: building it, finding it for an image's platform."""
