"""Finding suspicious labels: rank training examples by how likely their label is wrong.

After fitting, ``CrustClassifier.get_label_issues(X, y)`` returns a pandas DataFrame, most
suspicious first. Here 30% of the digits' labels are wrong, so we can check the ranking, and
:func:`sk_crust.coreset_report` tells how clean the last coreset was. About 10 seconds.
"""

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from sk_crust import CrustClassifier, add_label_noise, coreset_report

torch.set_num_threads(1)

X, y_true = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X).astype(np.float32)
y_noisy, _ = add_label_noise(y_true, 0.3, random_state=0)
is_wrong = y_noisy != y_true

net = CrustClassifier("mlp", max_epochs=30, train_split=None, verbose=0, random_state=0)
net.fit(X, y_noisy)

issues = net.get_label_issues(X, y_noisy)
print(issues.head(10).round(3).to_string())

for k in (50, 200, int(is_wrong.sum())):
    precision = is_wrong[issues.index[:k]].mean()
    print(f"top {k:>3}: {precision:.0%} really mislabelled (the noise rate is "
          f"{is_wrong.mean():.0%})")

report = coreset_report(y_true, y_noisy, net.coreset_indices_, net.coreset_weights_)
print(f"last coreset: {report.size} examples, {report.clean_fraction:.0%} clean "
      f"(the data: {report.dataset_clean_fraction:.0%})")

# Clean up and retrain: drop the 10% most suspicious examples.
keep = np.sort(issues.index[int(0.1 * len(X)):])
print(f"after dropping the top 10%: {np.mean(y_noisy[keep] == y_true[keep]):.0%} clean")
