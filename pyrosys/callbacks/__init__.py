"""Lightning callbacks and the checkpoint I/O a run is driven with: statistics, TensorBoard,
checkpoints, terminal conditions, the no-op profiler."""
