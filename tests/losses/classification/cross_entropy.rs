//! cross_entropy: golden values and properties (filled in by the integrator).
