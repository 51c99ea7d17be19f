// G-buffer pass: positions only; per-face attributes are fetched by gl_PrimitiveID.
uniform mat4 u_world_to_clip;  // pinhole projection @ world_to_camera (clip w = camera z)

in vec3 in_pos;                // world frame (global minus scene origin), metres
out float v_cam_z;

void main() {
    vec4 clip = u_world_to_clip * vec4(in_pos, 1.0);
    v_cam_z = clip.w;
    gl_Position = clip;
}
