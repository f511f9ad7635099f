"""Type stub of the optional C module ``_cdc.c``: FastCDC's cut points (pyfastcdc's, faster)."""

def cuts(data: bytes | memoryview, gear: bytes, mask_s: int, mask_l: int, min_size: int, avg_size: int,
         max_size: int, whole: bool, /) -> list[int]: ...
