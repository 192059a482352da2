"""Files in and out, torch-free where possible: images (read/write, bit depth, alpha, orientation), the one safetensors header reader, atomic writes."""
