"""The keypoint estimator: photo -> 18 OpenPose keypoints (BlazePose, no model code of ours).

`blazepose` runs the two MediaPipe networks, `blazepose_models` fetches their .tflite files and says
where they are kept, `keypoints` maps BlazePose's 33 landmarks to OpenPose's 18 and is the
`keypoints` command (photos -> annotation CSV or JSON files).
"""
