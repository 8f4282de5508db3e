"""The HPA calculation against the cases Kubernetes documents.

python3 -m unittest discover -s scripts/scaling -p 'test_*.py'
"""

import unittest

from hpa import Behavior, Hpa


def hpa(target=50, lo=1, hi=10, **behavior):
    return Hpa(target, lo, hi, Behavior(**behavior))


class HpaTest(unittest.TestCase):
    def test_desired_is_the_metric_over_the_target_rounded_up(self):
        self.assertEqual(hpa(up_pods=100).recommend(0, 260, 2), 6)

    def test_within_the_tolerance_nothing_changes(self):
        self.assertEqual(hpa().recommend(0, 109, 2), 2)  # 109 / 100 = 1.09
        self.assertEqual(hpa().recommend(0, 111, 2), 3)  # 1.11

    def test_scale_up_is_limited_by_the_larger_policy_per_period(self):
        h = hpa(hi=100)
        self.assertEqual(h.recommend(0, 3000, 1), 5)  # +4 pods beats +100%
        self.assertEqual(h.recommend(15, 3000, 5), 5)  # same period
        self.assertEqual(h.recommend(30, 3000, 5), 10)  # +100% beats +4 pods

    def test_scale_down_waits_for_the_highest_recommendation_of_the_window(self):
        h = hpa(scale_down_window=60, down_period=1)
        self.assertEqual(h.recommend(0, 500, 10), 10)
        self.assertEqual(h.recommend(30, 0, 10), 10)
        self.assertEqual(h.recommend(60, 0, 10), 10)  # t=0 still in the window
        self.assertEqual(h.recommend(61, 0, 10), 5)  # then at most -50% per period

    def test_replicas_stay_within_min_and_max(self):
        self.assertEqual(hpa(lo=2, scale_down_window=0).recommend(0, 0, 2), 2)
        self.assertEqual(hpa(hi=3).recommend(0, 5000, 3), 3)


if __name__ == "__main__":
    unittest.main()
