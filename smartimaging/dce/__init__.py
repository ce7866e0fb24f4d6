"""DCESynthesis: T1WI without fat suppression -> Pix2Pix -> synthetic first-phase DCE (fat-suppressed)."""
