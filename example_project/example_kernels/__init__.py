"""Example Helion kernels tuned by pytest-helion-tune: matmul, softmax and rms_norm."""
