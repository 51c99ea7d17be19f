// Sun shadow map: orthographic depth from the sun.
uniform mat4 u_world_to_shadow;
in vec3 in_pos;
void main() {
    gl_Position = u_world_to_shadow * vec4(in_pos, 1.0);
}
