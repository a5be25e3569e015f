"""The SDE the throughput benchmarks integrate: coordinate-wise geometric Brownian
motion dX_i = μ X_i dt + σ X_i dW_i, with params ``[μ, σ]``."""

MU, SIGMA = 0.5, 0.8


def drift(t, x, params, out):
    for i in range(x.shape[0]):
        out[i] = params[0] * x[i]


def diffusion(t, x, params, out):
    for i in range(x.shape[0]):
        out[i] = params[1] * x[i]
