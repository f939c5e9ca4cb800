"""The policy engine: policy as code (YAML) -> AST -> compiled snapshot -> explained decisions.

Data flow: `parse.parse_policy` turns an admin's YAML into a `model.Policy` (or rejects the
whole file with every error located); `compile.compile_policy` indexes it by application and
subject; `CompiledPolicy.decide(ctx)` answers for one request. `decide.decide_naive` is the
reference evaluator the compiled one must always agree with. Everything here is pure.
"""
