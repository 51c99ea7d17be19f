// G-buffer pass: which face is visible and its depth along the optical axis.
uniform int u_face_offset;  // index of this mesh's first face in the shared face buffer

in float v_cam_z;

layout(location = 0) out int o_face;     // face index + 1 (0 = nothing drawn)
layout(location = 1) out float o_depth;  // camera z, metres (0 = nothing drawn)

void main() {
    o_face = gl_PrimitiveID + u_face_offset + 1;
    o_depth = v_cam_z;
}
