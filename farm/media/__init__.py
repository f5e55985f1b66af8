"""Frame encoding and writers: mp4 (PyAV), PNG sequences (Pillow)."""
