"""The paper's reported numbers, in one place (method.md sections 5 and 6; the values its text kept).

Every table and figure that sets a result of this pipeline beside the paper's takes the paper's value from here.
"""

PAPER_TABLE1 = {  # method.md section 5, T = 128, d = 1024
    "imfn-teacher": ("0.052132 ± 0.000939", "12.83 ± 0.08", "0.6300 ± 0.0058"),
    "transformer": ("0.066598 ± 0.000140", "11.77 ± 0.01", "0.3396 ± 0.0011"),
    "mamba": ("0.055753 ± 0.000518", "12.54 ± 0.04", "0.4341 ± 0.0041"),
}
PAPER_PARAMS = {"imfn-teacher": 61_430_000, "transformer": 182_558_480, "mamba": 186_855_184}
PAPER_TEACHER_MSE = {128: 0.052132}  # Table 1 (d = 1024); the paper's Fig. 2-3 values were lost in extraction
PAPER_TABLE3 = {  # level: (MSE mean, std, PSNR mean, std), the paper's UCF-101 numbers
    0: (0.000796, 0.000551, 31.95, 2.96),
    1: (0.000810, 0.000556, 31.87, 2.96),
    2: (0.001204, 0.000888, 30.25, 3.11),
    3: (0.002163, 0.001839, 27.96, 3.46),
}
