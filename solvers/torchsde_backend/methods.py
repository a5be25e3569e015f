"""The torchsde methods the backend accepts (no torch import: read by the package and
by :mod:`.runner`)."""

# torchsde method -> noise types it supports for Itô SDEs (torchsde 0.2.6 solvers).
TORCHSDE_NOISE_TYPES = {
    "euler": ("diagonal", "general", "additive", "scalar"),
    "milstein": ("diagonal", "additive", "scalar"),
    "srk": ("diagonal", "additive", "scalar"),
}
