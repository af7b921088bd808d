"""Many runs of one scenario: objective checks, digests, confidence intervals, Monte Carlo and variants."""
