"""Procedural synthetic people with ground-truth factors (pure NumPy; no TensorFlow).

The embedded default dataset. Every image is a pure function of three JSON-serializable parameter
dicts, one per factor of the paper:

  * foreground `fg` (an identity): skin, hair colour and length, upper garment colour with a
    pattern (plain, stripes, a chest logo or an open jacket) and sleeve length, lower garment
    colour and kind (trousers, shorts or skirt), shoe colour, an optional backpack and a build.
  * background `bg` (a camera scene, `bg_id = 10 * camera + sequence`): a wall and a floor with
    gradients and textures, a few shapes, a lighting gradient and a tint. The sequences of one
    camera vary the tint, the light and the shapes around the camera's base scene, so background
    ids are shared by train and test identities as in Market-1501.
  * `pose`: a posable 3-D skeleton projected to 2-D (standing, walking at any gait phase, arm
    swing, bent or raised arms, crouching, leaning, any body yaw), placed and scaled in the box.

`render(fg_A, bg_B, pose_C, size)` therefore gives the exact target of any recombination at any
resolution, `person_mask` gives the pixels the person covers and `garment_coverage` the pixels each
garment's colour sets (the colour metric of `metrics.disentangle`).

Coordinates. A pose holds the FULL skeleton in pixels of the frame it was sampled for
(`pose["height"] x pose["width"]`, the dataset's stored size): `keypoints` are float (y, x) for
all 18 OpenPose joints (nose, neck, Rsho, Relb, Rwri, Lsho, Lelb, Lwri, Rhip, Rkne, Rank, Lhip,
Lkne, Lank, Reye, Leye, Rear, Lear), including joints outside the frame or hidden. Pixel `i` has
its centre at coordinate `i`; rendering or annotating at another size maps centres to centres,
`y' = (y + 0.5) * H' / H - 0.5`. `annotate` marks hidden and out-of-frame joints -1.

Pose dict keys: `height`, `width` (int, the frame), `keypoints` (18 x [y, x]), `depth` (18 floats,
pixels towards the camera, relative to the mid-hip), `head` ([y, x] centre of the head),
`scale` (pixels per standing body height), `yaw` (radians: 0 faces the camera, pi/2 faces image
right), `view` (`front`, `back`, `left` or `right`, the nearest of the four, naming the way the
person faces), `occluded` (18 bools: self-occluded joints, which `annotate` marks missing),
`action` (`stand`, `walk`, `crouch`) and `phase` (gait phase in radians).

Modules: `factors` samples the three factors and annotates poses, `painting` draws the people over
`backgrounds`' scenes, `body` holds the proportions both share. `python -m tfrecords.synthetic`
writes a dataset of them in the Market-1501 layout.

Reference: the factor decomposition of Ma et al., "Disentangled Person Image Generation", CVPR
2018, Sec. 3 (foreground, background, pose).
"""

from keras_disentangle.synthetic.factors import (VIEWS, annotate, sample_background, sample_camera,  # noqa: F401
                                                 sample_identity, sample_pose)
from keras_disentangle.synthetic.backgrounds import render_background  # noqa: F401
from keras_disentangle.synthetic.painting import GARMENTS, garment_coverage, person_mask, render  # noqa: F401
