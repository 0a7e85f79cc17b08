"""yamlforge: add published modules to Ultralytics and YOLOv9 checkouts, reviewably and reversibly."""
