"""Film specifications: storyboard parsing, model profiles and validation errors."""
