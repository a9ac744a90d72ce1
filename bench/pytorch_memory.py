"""How many bytes of activations PyTorch keeps for backward in our pre-activation ResNets.

A reference point for the project's GPU memory planner: the network below mirrors
`preresnet` in core/models.ts (28x28x1 inputs, 10 classes, width 16, BatchNorm).
For depths 20 and 56 at batch 128 (float32, CPU, train mode) it runs one forward of
random inputs and labels under `torch.autograd.graph.saved_tensors_hooks`, records
every tensor autograd saves, and reports
  - saved activations: each distinct storage counted once (a view saved by several ops
    costs its storage once), model parameters and buffers excluded;
  - undeduplicated: numel * element_size summed over every saved non-parameter tensor;
  - peak RSS (ru_maxrss) after `import torch` and after one full training step
    (that forward, backward, SGD with momentum 0.9 and weight decay 5e-4).
Each depth runs in its own child process because ru_maxrss only ever grows.

Run: python3 bench/pytorch_memory.py   (Debian's python3-torch, i.e. /usr/bin/python3)
"""

import resource
import subprocess
import sys
import time

DEPTHS = (20, 56)
BATCH = 128
WIDTH = 16
MIB = 1 << 20


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(depth):
    # torch is imported here, not at module level, so the parent stays small: its RSS
    # would otherwise leak into the children's ru_maxrss through fork/exec.
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    rss_import = peak_rss_mib()
    torch.manual_seed(0)
    torch.set_num_threads(2)

    def conv(cin, cout, k, stride=1):
        return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.bn1, self.conv1 = nn.BatchNorm2d(cin), conv(cin, cout, 3, stride)
            self.bn2, self.conv2 = nn.BatchNorm2d(cout), conv(cout, cout, 3)
            # The projection reads the pre-activated input, as in core/models.ts.
            self.shortcut = conv(cin, cout, 1, stride) if stride != 1 or cin != cout else None

        def forward(self, x):
            pre = F.relu(self.bn1(x))
            branch = self.conv2(F.relu(self.bn2(self.conv1(pre))))
            return branch + (self.shortcut(pre) if self.shortcut else x)

    class PreResNet(nn.Module):
        def __init__(self, depth, w):
            super().__init__()
            n = (depth - 2) // 6
            self.stem = conv(1, w, 3)
            blocks, cin = [], w
            for stage in range(3):
                for i in range(n):
                    blocks.append(Block(cin, w << stage, 2 if stage > 0 and i == 0 else 1))
                    cin = w << stage
            self.blocks = nn.Sequential(*blocks)
            self.bn_final, self.head = nn.BatchNorm2d(cin), nn.Linear(cin, 10)

        def forward(self, x):
            x = F.relu(self.bn_final(self.blocks(self.stem(x))))
            # A plain mean saves nothing for backward, like the project's avgpool.
            return self.head(x.mean(dim=(2, 3)))

    model = PreResNet(depth, WIDTH).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(BATCH, 1, 28, 28)
    y = torch.randint(0, 10, (BATCH,))

    # torch 1.13 has no untyped_storage(); storage() shares the same data_ptr.
    def storage(t):
        return t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()

    # Running stats are saved by batch_norm but are model state, not activations.
    state = {storage(t).data_ptr() for t in [*model.parameters(), *model.buffers()]}
    storages, undeduplicated = {}, 0

    def pack(t):
        nonlocal undeduplicated
        ptr = storage(t).data_ptr()
        if ptr not in state:
            undeduplicated += t.numel() * t.element_size()
            storages[ptr] = max(storages.get(ptr, 0), storage(t).nbytes())
        return t  # keep only sizes, never a reference, so the hook adds no memory

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()

    saved = sum(storages.values())
    print(torch.__version__)
    print(f"preresnet-{depth} batch {BATCH}: saved activations {saved / MIB:.1f} MiB "
          f"({saved} B; undeduplicated {undeduplicated / MIB:.1f} MiB); process peak RSS "
          f"{peak_rss_mib():.0f} MiB after import torch {rss_import:.0f} MiB "
          f"(+{peak_rss_mib() - rss_import:.0f} MiB)")


def main():
    if len(sys.argv) > 1:
        return measure(int(sys.argv[1]))
    start, lines = time.time(), []
    for depth in DEPTHS:
        out = subprocess.run([sys.executable, __file__, str(depth)], check=True,
                             capture_output=True, text=True).stdout.splitlines()
        version, line = out[-2], out[-1]
        lines.append(line)
    print(f"torch {version}")
    print("\n".join(lines))
    print(f"({time.time() - start:.1f} s)")


if __name__ == "__main__":
    main()
