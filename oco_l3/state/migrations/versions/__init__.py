"""One file per revision, applied in order; never edit one that has shipped, add the next."""
