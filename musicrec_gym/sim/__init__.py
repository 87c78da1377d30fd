"""The simulator: listener truth, response, leave and reward models, joined in a batch.

One module per listener role, each with its NumPy reference and the compiled function
the kernels call: ``response`` (listen probability), ``fitted_response`` (a fitted
world's: two towers and a repeat table), ``response_training`` (training the towers),
``leave`` (when a listener leaves),
``reward`` (what a play is worth), ``logging_policy`` (the warm-up's radio-like
policy), ``rng`` (one random stream per slot). ``simulator`` puts them together in
NumPy (the reference), ``kernels`` and ``compiled`` run them compiled, ``fitted`` runs a
world fitted to logs (its reference; ``fitted_kernels`` and ``fitted_compiled``
compiled); ``protocol`` is the interface the environments use (the compiled
and the fitted simulator implement it).
``constants``, ``layout`` and ``params`` hold what they share.
"""
