"""The simulated server the bench tests measure: Llama 3.1 8B on an L4, model mode, time scale 10."""

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
GPU = "L4"
SCALE = 10.0
