"""Video: clips in and out (``clips``), optical flow (``flow``) and how each stylised frame follows
the last (``frames``). Imported only when a clip is stylised, so ``import nst_core`` needs neither
OpenCV nor PyAV."""
