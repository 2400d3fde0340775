"""Body proportions of the synthetic people, shared by pose sampling and painting.

Units of the standing height; origin at the mid-hip, Y down, X towards the person's left, Z forward
(towards the camera when yaw = 0).
"""

SHOULDER_X, SHOULDER_Y, NECK_Y, HIP_X = 0.115, -0.325, -0.34, 0.065
THIGH, SHIN, UPPER_ARM, FOREARM = 0.245, 0.225, 0.17, 0.15
HEAD_RY, HEAD_RX, HEAD_OFFSET = 0.068, 0.052, 0.11
TORSO_TOP_W, TORSO_BOTTOM_W, TORSO_DEPTH, TORSO_ROUND = 0.125, 0.095, 0.07, 0.035
ARM_R, FOREARM_R, HAND_R = 0.034, 0.028, 0.027
THIGH_R, KNEE_R, ANKLE_R, SHOE_R, NECK_R = 0.052, 0.042, 0.03, 0.026, 0.027
