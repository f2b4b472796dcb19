"""IMRNet in JAX: self-supervised learning of video representations from compressed video."""
