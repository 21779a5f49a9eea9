"""The rope plugin's Triton kernel: q/k RMSNorm + rotary embedding in place, optionally storing K/V."""
