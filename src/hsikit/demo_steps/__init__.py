"""Demo steps contributed by each capability (reconstruction, segmentation, ...).

Each module in this package defines ``STEPS: list[hsikit.demo.DemoStep]`` and an
integer ``ORDER`` (lower runs first; the built-in picture steps of
:mod:`hsikit.demo` come before all of them). :func:`hsikit.demo.default_demo_steps`
collects them, so adding a capability to the demo means adding one module here.
"""
