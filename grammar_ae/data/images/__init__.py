"""Image data sets: named sources, file formats, uint8 arrays and their batches."""
