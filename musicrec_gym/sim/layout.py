"""Layout of the packed arrays the compiled kernels take (``cf``, ``ci``).

``ci`` (int64) opens with a header: the world's sizes and the reward mode (``C_*``),
the offsets of the world's arrays in ``cf`` or ``ci`` (``O_*``), and the columns of a
slot's state row in ``si`` (``I_*``, int64) and ``sf`` (``F_*``, float64). ``cf``
(float64) opens with the float parameters (``P_*``). ``CompiledSimulator.pack`` fills
them; every compiled function reads them by these names.
"""

# ``ci`` header: sizes and parameters, then offsets (into ``cf`` or ``ci``) and state columns.
(
    C_U, C_T, C_K, C_M, C_HW, C_WARM, C_POOL, C_CONTK, C_SKIPW, C_MAXS, C_MODE, C_PTAB,
    C_SATL,
    O_TASTE, O_FACT, O_UTERM, O_TTERM, O_POPCDF, O_BASE, O_CSTAT, O_CTHR,
    O_ARTIST, O_CIDX, O_CART, O_PTAB, O_KIND,
    I_USER, I_HLEN, I_STEPS, I_OPTA, I_SAT, I_HIST, I_HLIS, I_WT, I_WA, I_CAND, I_CART,
    F_OPTL, F_THR, F_WL, F_CST, F_PEN,
    HEADER,
) = range(43)  # fmt: skip
# C_SATL: satisfaction's levels, 0 when it is off (MusicRec-v0); O_KIND: each track's
# kind (musicrec_gym.sim.satisfaction); I_SAT: a slot's satisfaction.
# float parameters, the first entries of ``cf``
(
    P_REPEAT, P_ARTIST, P_PER_SKIP, P_A, P_B, P_POP, P_NEXT,
    P_TLL, P_TLH, P_TSL, P_TSH, P_LIKE, P_ADD, P_SATW, N_PARAMS,
) = range(15)  # fmt: skip
