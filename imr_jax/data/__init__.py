"""Data: the record schema shared by the offline writer and the input pipeline, and the pipeline itself."""
