"""The canary judge against ground truth: simulated deployments (A/A and known regressions)
judged by slipway's judge and by two reference judges on identical traffic."""
