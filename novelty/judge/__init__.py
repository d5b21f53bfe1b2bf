"""Judging: calibration against held-out real images, copy evidence, per-sample verdicts, set statistics (C_T, PRDC), validation."""
