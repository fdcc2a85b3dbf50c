"""An example qwex backend: the local runner at a lower CPU priority."""
