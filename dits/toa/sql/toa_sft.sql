-- TOA's SFT set (the paper's data synthesis, arXiv 2412.17061): per method and prompt, the best response.
--
--   best = the highest raw reward among the K·n responses of the run with budget $n; ties go to
--   the earlier play (smallest t), as argmax over plays in order.
--
-- Relation: toa (the toa table). Parameter, bound by dits/toa/select.py: $n, the budget (n per model)
-- whose responses are the data (toa.budgets' largest). The reward is what the search saw (a reward
-- model or the verifier); the gold score is kept beside it, never used to choose.

SELECT method, task, example_id, t, model, text AS response, reward, score
FROM toa
WHERE n = $n
QUALIFY row_number() OVER (PARTITION BY method, task, example_id ORDER BY reward DESC, t) = 1
ORDER BY method, task, example_id
