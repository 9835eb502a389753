# Summarises `nvcc -Xptxas -v` output: one line per kernel (registers, shared memory, stack, spills).
import re, subprocess, sys
cur = None; rows = {}
for line in sys.stdin:
    m = re.search(r"Compiling entry function '([^']+)'", line)
    if m: cur = m.group(1); rows[cur] = {}; continue
    m = re.search(r"Function properties for (\S+)", line)
    if m: cur = m.group(1); rows.setdefault(cur, {}); continue
    if cur is None: continue
    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m: rows[cur].update(stack=m.group(1), spill=m.group(2) + "/" + m.group(3))
    m = re.search(r"Used (\d+) registers", line)
    if m: rows[cur]["regs"] = m.group(1)
    m = re.search(r"(\d+) bytes smem", line)
    if m: rows[cur]["smem"] = m.group(1)
names = list(rows)
dem = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.split("\n")
for n, d in zip(names, dem):
    d = re.sub(r"sl::cuda::|\(anonymous namespace\)::|igemm::", "", d)
    d = re.sub(r"\(.*\)$", "", d)
    d = d.replace("Cfg<", "C<")
    r = rows[n]
    print(f"regs {r.get('regs','?'):>4} smem {r.get('smem','0'):>6} stack {r.get('stack','?'):>3} spill {r.get('spill','?'):>7}  {d[:150]}")
