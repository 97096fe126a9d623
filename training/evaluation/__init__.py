"""How good a model is: metrics, client bootstrap, subgroups, clinics held out, figures and the model card."""
